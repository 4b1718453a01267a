import type { CorpusDocument } from "./corpus.js";

/**
 * The corpus `make run` serves when no TOOLPLANE_SEARCH_CORPUS is given: a few
 * hundred short reference pages written for this project (geography, chemistry,
 * image processing, general science, well-known people, history, space), expanded
 * from the fact tables below.
 */

// name, capital, continent, languages, currency, one more fact
const COUNTRIES: Array<[string, string, string, string, string, string]> = [
  [
    "France",
    "Paris",
    "Europe",
    "French",
    "euro",
    "The Loire valley is known for its chateaux and the Alps rise on its eastern border.",
  ],
  [
    "Germany",
    "Berlin",
    "Europe",
    "German",
    "euro",
    "The Rhine flows north through the country to the North Sea delta.",
  ],
  ["Italy", "Rome", "Europe", "Italian", "euro", "The Apennine mountains run along the length of the peninsula."],
  ["Spain", "Madrid", "Europe", "Spanish", "euro", "The Meseta Central plateau covers much of the interior."],
  ["Portugal", "Lisbon", "Europe", "Portuguese", "euro", "The Tagus river reaches the Atlantic at Lisbon."],
  [
    "Netherlands",
    "Amsterdam",
    "Europe",
    "Dutch",
    "euro",
    "A large share of the land lies below sea level, protected by dikes and polders.",
  ],
  [
    "Belgium",
    "Brussels",
    "Europe",
    "Dutch, French and German",
    "euro",
    "Brussels hosts many institutions of the European Union.",
  ],
  [
    "Switzerland",
    "Bern",
    "Europe",
    "German, French, Italian and Romansh",
    "Swiss franc",
    "The Alps cover about two thirds of its territory.",
  ],
  ["Austria", "Vienna", "Europe", "German", "euro", "The Danube passes through Vienna on its way to the Black Sea."],
  [
    "Poland",
    "Warsaw",
    "Europe",
    "Polish",
    "zloty",
    "The Vistula is the longest river flowing entirely within the country.",
  ],
  [
    "Sweden",
    "Stockholm",
    "Europe",
    "Swedish",
    "Swedish krona",
    "Stockholm is built on fourteen islands where Lake Malaren meets the Baltic Sea.",
  ],
  [
    "Norway",
    "Oslo",
    "Europe",
    "Norwegian",
    "Norwegian krone",
    "Its western coast is cut by deep fjords carved by glaciers.",
  ],
  [
    "Finland",
    "Helsinki",
    "Europe",
    "Finnish and Swedish",
    "euro",
    "Tens of thousands of lakes cover the south and centre of the country.",
  ],
  [
    "Denmark",
    "Copenhagen",
    "Europe",
    "Danish",
    "Danish krone",
    "The country consists of the Jutland peninsula and hundreds of islands.",
  ],
  ["Ireland", "Dublin", "Europe", "Irish and English", "euro", "The Shannon is the longest river of Ireland."],
  ["Greece", "Athens", "Europe", "Greek", "euro", "Thousands of islands lie in the Aegean and Ionian seas."],
  [
    "Hungary",
    "Budapest",
    "Europe",
    "Hungarian",
    "forint",
    "Budapest grew from the towns of Buda and Pest on either bank of the Danube.",
  ],
  ["Czechia", "Prague", "Europe", "Czech", "Czech koruna", "The Vltava river flows through Prague."],
  [
    "Iceland",
    "Reykjavik",
    "Europe",
    "Icelandic",
    "Icelandic krona",
    "It sits on the Mid-Atlantic Ridge and has many active volcanoes and geysers.",
  ],
  ["Egypt", "Cairo", "Africa", "Arabic", "Egyptian pound", "Most people live along the Nile valley and delta."],
  [
    "Kenya",
    "Nairobi",
    "Africa",
    "Swahili and English",
    "Kenyan shilling",
    "The Great Rift Valley crosses the country from north to south.",
  ],
  ["Nigeria", "Abuja", "Africa", "English", "naira", "The Niger and Benue rivers meet at Lokoja."],
  [
    "Morocco",
    "Rabat",
    "Africa",
    "Arabic and Berber",
    "Moroccan dirham",
    "The Atlas mountains separate the Atlantic coast from the Sahara.",
  ],
  [
    "Ethiopia",
    "Addis Ababa",
    "Africa",
    "Amharic",
    "birr",
    "The Blue Nile begins at Lake Tana in the Ethiopian highlands.",
  ],
  [
    "Ghana",
    "Accra",
    "Africa",
    "English",
    "cedi",
    "Lake Volta, formed by the Akosombo Dam, is one of the largest artificial lakes.",
  ],
  [
    "South Africa",
    "Pretoria",
    "Africa",
    "eleven official languages",
    "rand",
    "Table Mountain overlooks Cape Town near the Cape of Good Hope.",
  ],
  [
    "Tanzania",
    "Dodoma",
    "Africa",
    "Swahili and English",
    "Tanzanian shilling",
    "Mount Kilimanjaro, the highest peak in Africa, stands in the north-east.",
  ],
  [
    "Senegal",
    "Dakar",
    "Africa",
    "French",
    "West African CFA franc",
    "Dakar lies on the Cap-Vert peninsula, the westernmost point of mainland Africa.",
  ],
  ["Japan", "Tokyo", "Asia", "Japanese", "yen", "Mount Fuji is a volcano on the island of Honshu."],
  ["China", "Beijing", "Asia", "Mandarin Chinese", "renminbi", "The Yangtze is the longest river in Asia."],
  [
    "India",
    "New Delhi",
    "Asia",
    "Hindi and English",
    "Indian rupee",
    "The Ganges flows from the Himalaya to the Bay of Bengal.",
  ],
  ["South Korea", "Seoul", "Asia", "Korean", "South Korean won", "The Han river runs through Seoul."],
  ["Vietnam", "Hanoi", "Asia", "Vietnamese", "dong", "The Mekong delta in the south is a major rice-growing region."],
  ["Thailand", "Bangkok", "Asia", "Thai", "baht", "The Chao Phraya river flows through Bangkok."],
  [
    "Indonesia",
    "Jakarta",
    "Asia",
    "Indonesian",
    "rupiah",
    "It spans more than seventeen thousand islands between the Indian and Pacific oceans.",
  ],
  ["Mongolia", "Ulaanbaatar", "Asia", "Mongolian", "tugrik", "The Gobi desert covers much of the south."],
  [
    "Nepal",
    "Kathmandu",
    "Asia",
    "Nepali",
    "Nepalese rupee",
    "Eight of the ten highest mountains on Earth lie on or near its borders.",
  ],
  [
    "Turkey",
    "Ankara",
    "Asia and Europe",
    "Turkish",
    "Turkish lira",
    "The Bosporus strait divides Istanbul between Europe and Asia.",
  ],
  [
    "Canada",
    "Ottawa",
    "North America",
    "English and French",
    "Canadian dollar",
    "It has the longest coastline of any country.",
  ],
  [
    "United States",
    "Washington, D.C.",
    "North America",
    "English (de facto)",
    "US dollar",
    "The Mississippi and Missouri form one of the longest river systems in the world.",
  ],
  [
    "Mexico",
    "Mexico City",
    "North America",
    "Spanish",
    "Mexican peso",
    "Mexico City lies in a high valley on the site of the former Lake Texcoco.",
  ],
  ["Cuba", "Havana", "North America", "Spanish", "Cuban peso", "It is the largest island of the Caribbean."],
  ["Brazil", "Brasilia", "South America", "Portuguese", "real", "The Amazon rainforest covers much of the north."],
  [
    "Argentina",
    "Buenos Aires",
    "South America",
    "Spanish",
    "Argentine peso",
    "Aconcagua in the Andes is the highest peak outside Asia.",
  ],
  [
    "Chile",
    "Santiago",
    "South America",
    "Spanish",
    "Chilean peso",
    "The Atacama desert in the north is one of the driest places on Earth.",
  ],
  [
    "Peru",
    "Lima",
    "South America",
    "Spanish, Quechua and Aymara",
    "sol",
    "Lake Titicaca lies on its border with Bolivia.",
  ],
  [
    "Colombia",
    "Bogota",
    "South America",
    "Spanish",
    "Colombian peso",
    "It has coasts on both the Caribbean Sea and the Pacific Ocean.",
  ],
  [
    "Australia",
    "Canberra",
    "Oceania",
    "English",
    "Australian dollar",
    "The Great Barrier Reef lies off the coast of Queensland.",
  ],
  [
    "New Zealand",
    "Wellington",
    "Oceania",
    "English, Maori and New Zealand Sign Language",
    "New Zealand dollar",
    "The Southern Alps run along the South Island.",
  ],
  [
    "Fiji",
    "Suva",
    "Oceania",
    "English, Fijian and Fiji Hindi",
    "Fijian dollar",
    "The country is made of more than three hundred islands.",
  ],
];

// name, symbol, atomic number, fact
const ELEMENTS: Array<[string, string, number, string]> = [
  ["Hydrogen", "H", 1, "It is the lightest and most abundant element in the universe; stars fuse it into helium."],
  ["Helium", "He", 2, "A noble gas that stays liquid down to absolute zero at normal pressure."],
  ["Lithium", "Li", 3, "The lightest metal, widely used in rechargeable batteries."],
  ["Carbon", "C", 6, "Forms diamond, graphite and graphene, and is the basis of organic chemistry."],
  ["Nitrogen", "N", 7, "Makes up about 78 percent of Earth's atmosphere."],
  ["Oxygen", "O", 8, "Makes up about 21 percent of the atmosphere and is needed for aerobic respiration."],
  ["Fluorine", "F", 9, "The most electronegative element; it reacts with almost everything."],
  ["Neon", "Ne", 10, "Glows red-orange in gas discharge tubes, hence neon signs."],
  ["Sodium", "Na", 11, "A soft alkali metal that reacts vigorously with water; table salt is sodium chloride."],
  ["Magnesium", "Mg", 12, "Burns with a brilliant white flame and is used in light alloys."],
  ["Aluminium", "Al", 13, "The most abundant metal in Earth's crust, protected by a thin oxide layer."],
  ["Silicon", "Si", 14, "A semiconductor at the heart of integrated circuits and image sensors."],
  ["Phosphorus", "P", 15, "Essential for DNA and ATP; white phosphorus glows in air."],
  ["Sulfur", "S", 16, "A yellow non-metal found near volcanoes; used to make sulfuric acid."],
  ["Chlorine", "Cl", 17, "A yellow-green gas used to disinfect drinking water."],
  ["Argon", "Ar", 18, "The third most abundant gas in the atmosphere, used as a shield gas in welding."],
  ["Potassium", "K", 19, "An alkali metal essential for nerve signals in animals."],
  ["Calcium", "Ca", 20, "Builds bones and teeth and is found in limestone and chalk."],
  ["Titanium", "Ti", 22, "Strong, light and corrosion resistant, used in aircraft and implants."],
  ["Chromium", "Cr", 24, "Gives stainless steel its resistance to rust and rubies their red colour."],
  ["Iron", "Fe", 26, "The main component of steel and of Earth's core."],
  ["Cobalt", "Co", 27, "Used in magnets and gives cobalt glass its deep blue colour."],
  ["Nickel", "Ni", 28, "A corrosion-resistant metal used in plating and coins."],
  ["Copper", "Cu", 29, "An excellent conductor of electricity used in wiring."],
  ["Zinc", "Zn", 30, "Used to galvanise steel against corrosion."],
  [
    "Silver",
    "Ag",
    47,
    "Has the highest electrical conductivity of any element; silver halides made photographic film light sensitive.",
  ],
  ["Tin", "Sn", 50, "Alloyed with copper to make bronze."],
  ["Iodine", "I", 53, "Sublimes into a violet vapour and is needed by the thyroid gland."],
  ["Tungsten", "W", 74, "Has the highest melting point of all metals and was used in light bulb filaments."],
  ["Platinum", "Pt", 78, "A dense, unreactive metal used in catalytic converters."],
  ["Gold", "Au", 79, "Does not tarnish; used in electronics connectors and jewellery."],
  ["Mercury", "Hg", 80, "The only metal that is liquid at room temperature."],
  ["Lead", "Pb", 82, "A dense, soft metal used in radiation shielding."],
  ["Uranium", "U", 92, "Its isotope uranium-235 can sustain a nuclear chain reaction."],
];

// term, explanation
const IMAGE_PROCESSING: Array<[string, string]> = [
  [
    "Image cropping",
    "Cropping keeps a rectangular region of an image and discards the rest. It is given by a bounding box such as left, top, right and bottom pixel coordinates, and is the most common way to zoom into a detail before looking at it again.",
  ],
  [
    "Image resizing and resampling",
    "Resizing changes the pixel dimensions of an image. Downscaling needs a low-pass filter (for example Lanczos or area averaging) to avoid aliasing; upscaling interpolates new pixels with nearest neighbour, bilinear or bicubic kernels.",
  ],
  [
    "Image rotation",
    "Rotating by multiples of 90 degrees only reorders pixels. Other angles need interpolation and either grow the canvas or crop the corners.",
  ],
  [
    "Gaussian blur",
    "A Gaussian blur convolves the image with a Gaussian kernel. The standard deviation sigma controls the strength; the filter is separable, so a 2D blur is two 1D passes.",
  ],
  [
    "Sharpening with unsharp masking",
    "Unsharp masking subtracts a blurred copy from the original to find edges, then adds a scaled amount of that detail back. Too much creates halos around edges.",
  ],
  [
    "Edge detection with the Sobel operator",
    "The Sobel operator estimates horizontal and vertical intensity gradients with two 3x3 kernels. The gradient magnitude highlights edges and the angle gives their orientation.",
  ],
  [
    "Canny edge detector",
    "The Canny detector smooths the image, computes gradients, thins edges by non-maximum suppression and links them with two thresholds (hysteresis).",
  ],
  [
    "Histogram equalization",
    "Histogram equalization remaps intensities so the cumulative histogram becomes roughly linear, stretching contrast in images whose values are bunched together. CLAHE applies it locally with a clip limit.",
  ],
  [
    "Gamma correction",
    "Gamma correction applies a power law to pixel values. Displays and the sRGB standard use it so that equal steps in stored values look like roughly equal steps in brightness.",
  ],
  [
    "Colour spaces: RGB, HSV and Lab",
    "RGB mixes red, green and blue light. HSV separates hue, saturation and value, which helps when selecting colours. CIE Lab aims at perceptual uniformity: equal distances look like equal colour differences.",
  ],
  [
    "Grayscale conversion",
    "Converting colour to grayscale weights the channels by perceived brightness, for example luma Y = 0.299 R + 0.587 G + 0.114 B in the Rec. 601 convention.",
  ],
  [
    "Thresholding and Otsu's method",
    "Thresholding turns a grayscale image into a binary one. Otsu's method picks the threshold that maximises the variance between the two classes of pixels.",
  ],
  [
    "Morphological operations",
    "Erosion shrinks bright regions and dilation grows them, using a structuring element. Opening (erosion then dilation) removes small specks; closing fills small holes.",
  ],
  [
    "Connected component labelling",
    "Connected component labelling gives every group of touching foreground pixels its own label, so objects can be counted and measured.",
  ],
  [
    "Contour finding",
    "Contour tracing follows the boundary of binary regions. Contours give an object's outline, area, perimeter and bounding box.",
  ],
  [
    "Hough transform",
    "The Hough transform detects lines and circles by letting each edge pixel vote for every shape that could pass through it; peaks in the vote space are the detected shapes.",
  ],
  [
    "Optical character recognition",
    "OCR converts images of text into characters. Classic pipelines binarise, segment lines and characters, and classify them; modern systems use neural networks on whole lines.",
  ],
  [
    "JPEG compression",
    "JPEG splits an image into 8x8 blocks, applies a discrete cosine transform, quantises the coefficients and entropy codes them. High compression shows blocking and ringing artefacts.",
  ],
  [
    "PNG format",
    "PNG is a lossless format using DEFLATE compression with per-row prediction filters. It supports transparency through an alpha channel.",
  ],
  [
    "WebP and AVIF",
    "WebP and AVIF are modern image formats derived from video codecs (VP8 and AV1). Both support lossy and lossless modes and usually compress better than JPEG.",
  ],
  [
    "EXIF metadata and orientation",
    "EXIF metadata stores camera settings, timestamps and an orientation tag. Viewers rotate the image according to that tag, so software should apply it before measuring pixels.",
  ],
  [
    "Perceptual hashing",
    "A perceptual hash summarises how an image looks in a few bits. Average hash, difference hash (dHash) and DCT-based pHash change little when the image is resized or recompressed, so near-duplicates have a small Hamming distance.",
  ],
  [
    "Reverse image search",
    "Reverse image search takes an image as the query and finds pages or images that show the same or similar content, using perceptual hashes, local features or learned embeddings.",
  ],
  [
    "Feature matching with SIFT and ORB",
    "Keypoint detectors such as SIFT and ORB find distinctive points and describe their neighbourhoods. Matching descriptors between images supports stitching, tracking and object recognition.",
  ],
  [
    "Image stitching and homographies",
    "Panorama stitching matches features between overlapping photos, estimates a homography with RANSAC, warps the images into one frame and blends the seams.",
  ],
  [
    "Noise reduction",
    "Denoising removes sensor noise. Median filters remove salt-and-pepper noise; bilateral filtering and non-local means smooth flat areas while keeping edges.",
  ],
  [
    "Image convolution",
    "Convolution slides a small kernel over the image and sums the weighted neighbourhood at every pixel. Blurs, sharpening and edge filters are all convolutions.",
  ],
  [
    "Fourier transform of images",
    "The 2D Fourier transform represents an image as a sum of sinusoidal patterns. Low frequencies carry smooth shading, high frequencies carry edges and fine texture.",
  ],
  [
    "Aliasing and moire",
    "Aliasing appears when a pattern is sampled below twice its highest frequency. Fine repeating textures then turn into false coarse patterns called moire.",
  ],
  [
    "Bounding boxes and coordinates",
    "Bounding boxes are usually given as pixel coordinates with the origin at the top-left corner, x growing to the right and y downwards. Some tools use normalised coordinates between 0 and 1 or 0 and 1000.",
  ],
  [
    "Intersection over union",
    "Intersection over union divides the overlap area of two boxes by the area of their union. It scores how well a predicted box matches a reference box.",
  ],
  [
    "Object detection",
    "Object detectors predict boxes and class labels. Two-stage detectors propose regions and then classify them; single-stage detectors predict boxes directly on a grid.",
  ],
  [
    "Semantic segmentation",
    "Semantic segmentation assigns a class label to every pixel. Instance segmentation additionally separates individual objects of the same class.",
  ],
  [
    "Image pyramids",
    "An image pyramid stores the same image at successively halved resolutions. Coarse levels speed up search; fine levels refine the result.",
  ],
  [
    "Alpha compositing",
    "Alpha compositing combines a foreground over a background using the foreground's opacity. Premultiplied alpha stores colour already multiplied by opacity, which makes blending and filtering correct.",
  ],
  [
    "Colour quantization and palettes",
    "Colour quantization reduces an image to a limited palette, for example with median cut or k-means, often followed by dithering to hide banding.",
  ],
  [
    "Dithering",
    "Dithering adds structured or error-diffused noise so that a limited palette appears to show intermediate tones. Floyd-Steinberg diffuses each pixel's error to its neighbours.",
  ],
  [
    "Chart reading from images",
    "Reading values from a chart image means locating the axes, reading the tick labels, mapping pixel positions to data coordinates and measuring bars, points or lines.",
  ],
  [
    "Image annotation and drawing",
    "Drawing rectangles, arrows and labels on an image helps to point at regions. The drawing should use contrasting colours and line widths scaled to the image size.",
  ],
  [
    "Zooming into image details",
    "Zooming into a detail combines a crop with an upscale so small text or objects become legible; upscaling alone adds no new information but makes the detail easier to inspect.",
  ],
];

// title, explanation
const SCIENCE: Array<[string, string]> = [
  [
    "Photosynthesis",
    "Plants, algae and cyanobacteria use light energy to turn carbon dioxide and water into sugars, releasing oxygen. Chlorophyll absorbs mostly red and blue light, which is why leaves look green.",
  ],
  [
    "The water cycle",
    "Water evaporates from oceans and land, condenses into clouds, falls as precipitation and returns through rivers and groundwater.",
  ],
  [
    "Plate tectonics",
    "Earth's lithosphere is broken into plates that move a few centimetres a year. Their boundaries produce earthquakes, volcanoes, mountain ranges and ocean trenches.",
  ],
  [
    "The speed of light",
    "Light travels through vacuum at exactly 299,792,458 metres per second; the metre is defined from this value.",
  ],
  [
    "Newton's laws of motion",
    "An object keeps its velocity unless a force acts on it; force equals mass times acceleration; every action has an equal and opposite reaction.",
  ],
  [
    "Conservation of energy",
    "Energy is neither created nor destroyed in an isolated system; it changes form, for example from potential to kinetic energy.",
  ],
  [
    "Entropy and the second law",
    "The entropy of an isolated system does not decrease over time. Heat flows spontaneously from hotter to colder bodies.",
  ],
  [
    "DNA structure",
    "DNA is a double helix of two strands held together by base pairs: adenine with thymine and guanine with cytosine.",
  ],
  [
    "Evolution by natural selection",
    "Heritable variations that improve survival and reproduction become more common over generations.",
  ],
  [
    "The periodic table",
    "The periodic table arranges elements by atomic number. Elements in the same column share outer electron configurations and similar chemistry.",
  ],
  [
    "Electromagnetic spectrum",
    "The electromagnetic spectrum runs from radio waves through microwaves, infrared, visible light and ultraviolet to X-rays and gamma rays.",
  ],
  [
    "Visible light and colour vision",
    "Human eyes have three types of cone cells most sensitive to long, medium and short wavelengths; colour perception comes from comparing their responses.",
  ],
  [
    "Refraction and lenses",
    "Light bends when it passes between media of different refractive index. Lenses use refraction to focus light, as in cameras and eyes.",
  ],
  [
    "How digital cameras work",
    "A digital camera focuses light onto a sensor of photosites. A colour filter array such as the Bayer pattern records one colour per photosite, and demosaicing reconstructs full colour.",
  ],
  [
    "Gravity and orbits",
    "Gravity keeps planets in elliptical orbits around the Sun, as described by Kepler's laws and explained by Newton's law of universal gravitation.",
  ],
  [
    "The Solar System",
    "The Sun is orbited by eight planets: Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune.",
  ],
  ["Jupiter", "Jupiter is the largest planet. Its Great Red Spot is a storm larger than Earth."],
  [
    "Mars",
    "Mars has the tallest known volcano in the Solar System, Olympus Mons, and polar caps of water and carbon dioxide ice.",
  ],
  ["Saturn's rings", "Saturn's rings are made mostly of water ice particles, from tiny grains to boulders."],
  [
    "The Moon",
    "The Moon is tidally locked, always showing the same face to Earth. Its gravity drives most of Earth's ocean tides.",
  ],
  [
    "Black holes",
    "A black hole is a region where gravity is so strong that nothing, not even light, escapes from inside its event horizon.",
  ],
  [
    "Climate and weather",
    "Weather is the state of the atmosphere at a given time; climate is the long-term average of weather over decades.",
  ],
  [
    "The greenhouse effect",
    "Greenhouse gases such as carbon dioxide, methane and water vapour absorb infrared radiation and warm the lower atmosphere.",
  ],
  [
    "Sound waves",
    "Sound is a pressure wave travelling through a medium; in air at room temperature it moves at about 343 metres per second.",
  ],
  [
    "Acids and bases",
    "Acids donate protons and bases accept them. The pH scale measures acidity; pure water at 25 degrees Celsius has pH 7.",
  ],
  [
    "Cells",
    "The cell is the basic unit of life. Eukaryotic cells have a nucleus and organelles such as mitochondria; prokaryotic cells do not.",
  ],
  [
    "Vaccines",
    "Vaccines train the immune system to recognise a pathogen by exposing it to a harmless form or part of it.",
  ],
  [
    "Earthquakes",
    "Earthquakes release stress built up along faults. Magnitude scales are logarithmic: each whole step is about 32 times more energy.",
  ],
  [
    "Volcanoes",
    "Volcanoes form where magma reaches the surface, mostly at plate boundaries and above hotspots such as Hawaii.",
  ],
  [
    "Ocean currents",
    "Surface currents are driven by winds and Earth's rotation; the deep thermohaline circulation is driven by differences in temperature and salinity.",
  ],
];

// name, kind, location, fact
const LANDMARKS: Array<[string, string, string, string]> = [
  [
    "Mount Everest",
    "mountain",
    "the Himalaya on the border of Nepal and China",
    "At about 8,849 metres it is the highest mountain above sea level.",
  ],
  [
    "K2",
    "mountain",
    "the Karakoram on the border of Pakistan and China",
    "It is the second highest mountain on Earth.",
  ],
  ["Mont Blanc", "mountain", "the Alps on the border of France and Italy", "It is the highest mountain in the Alps."],
  [
    "Mount Kilimanjaro",
    "volcano",
    "north-eastern Tanzania",
    "It is the highest mountain in Africa and a free-standing volcanic massif.",
  ],
  ["Denali", "mountain", "Alaska, United States", "It is the highest peak in North America."],
  [
    "The Nile",
    "river",
    "north-eastern Africa",
    "It flows north into the Mediterranean Sea and is one of the two longest rivers in the world.",
  ],
  ["The Amazon", "river", "South America", "It carries more water than any other river on Earth."],
  [
    "The Danube",
    "river",
    "central and eastern Europe",
    "It flows through ten countries and four capital cities before reaching the Black Sea.",
  ],
  ["The Mekong", "river", "South-East Asia", "It rises on the Tibetan Plateau and ends in a large delta in Vietnam."],
  ["The Volga", "river", "Russia", "It is the longest river in Europe and flows into the Caspian Sea."],
  ["The Sahara", "desert", "northern Africa", "It is the largest hot desert in the world."],
  ["The Gobi", "desert", "Mongolia and northern China", "It is a cold desert with harsh winters."],
  ["The Atacama", "desert", "northern Chile", "Some weather stations there have never recorded rain."],
  ["Antarctica", "continent", "around the South Pole", "Its ice sheet holds most of the fresh water on Earth."],
  ["Lake Baikal", "lake", "Siberia, Russia", "It is the deepest and oldest freshwater lake in the world."],
  ["Lake Victoria", "lake", "East Africa", "It is the largest lake in Africa and a source of the White Nile."],
  ["The Caspian Sea", "lake", "between Europe and Asia", "It is the largest enclosed inland body of water on Earth."],
  [
    "The Dead Sea",
    "lake",
    "between Jordan and Israel",
    "Its shore is the lowest land elevation on Earth and its water is very salty.",
  ],
  [
    "The Great Barrier Reef",
    "coral reef",
    "off Queensland, Australia",
    "It is the largest coral reef system in the world.",
  ],
  ["The Grand Canyon", "canyon", "Arizona, United States", "The Colorado River carved it over millions of years."],
  [
    "Victoria Falls",
    "waterfall",
    "the border of Zambia and Zimbabwe",
    "The Zambezi river drops into a narrow gorge there.",
  ],
  ["Angel Falls", "waterfall", "Venezuela", "It is the highest uninterrupted waterfall in the world."],
  [
    "The Mariana Trench",
    "ocean trench",
    "the western Pacific Ocean",
    "Its Challenger Deep is the deepest known point of the oceans.",
  ],
  ["The Andes", "mountain range", "western South America", "It is the longest continental mountain range."],
  [
    "The Himalaya",
    "mountain range",
    "South Asia",
    "It contains the highest peaks on Earth and formed as India collided with Asia.",
  ],
  ["The Alps", "mountain range", "central Europe", "They stretch across eight countries from France to Slovenia."],
  [
    "Greenland",
    "island",
    "the North Atlantic",
    "It is the world's largest island that is not a continent, mostly covered by an ice sheet.",
  ],
  [
    "Madagascar",
    "island",
    "the Indian Ocean off south-east Africa",
    "Most of its wildlife, including lemurs, lives nowhere else.",
  ],
  [
    "The Amazon rainforest",
    "rainforest",
    "the Amazon basin in South America",
    "It is the largest tropical rainforest on Earth.",
  ],
  [
    "The Strait of Gibraltar",
    "strait",
    "between Spain and Morocco",
    "It connects the Atlantic Ocean and the Mediterranean Sea.",
  ],
];

// name, born–died, who they were, what they are known for
const PEOPLE: Array<[string, string, string, string]> = [
  [
    "Albert Einstein",
    "1879–1955",
    "a German-born theoretical physicist",
    "He developed the theory of relativity (special and general), explained the photoelectric effect (Nobel Prize in Physics 1921) and gave the mass–energy equivalence E = mc².",
  ],
  [
    "Isaac Newton",
    "1643–1727",
    "an English mathematician and physicist",
    "His Principia (1687) set out the laws of motion and universal gravitation; he also developed calculus and studied optics with prisms.",
  ],
  [
    "Marie Curie",
    "1867–1934",
    "a Polish and naturalised-French physicist and chemist",
    "She discovered polonium and radium, coined the word radioactivity and was the first person to win Nobel Prizes in two sciences (physics 1903, chemistry 1911).",
  ],
  [
    "Charles Darwin",
    "1809–1882",
    "an English naturalist",
    "On the Origin of Species (1859) set out evolution by natural selection, drawing on his voyage on HMS Beagle and the Galápagos finches.",
  ],
  [
    "Galileo Galilei",
    "1564–1642",
    "an Italian astronomer and physicist",
    "With an improved telescope he discovered the four large moons of Jupiter and the phases of Venus, supporting the Copernican model.",
  ],
  [
    "Nikola Tesla",
    "1856–1943",
    "a Serbian-American inventor and electrical engineer",
    "He designed the alternating-current induction motor and the polyphase AC system that powers electric grids.",
  ],
  [
    "Thomas Edison",
    "1847–1931",
    "an American inventor and businessman",
    "He developed the phonograph, a long-lasting practical incandescent light bulb and early motion-picture cameras; he held over a thousand patents.",
  ],
  [
    "Ada Lovelace",
    "1815–1852",
    "an English mathematician",
    "Her notes on Charles Babbage's Analytical Engine contain what is considered the first published computer program.",
  ],
  [
    "Alan Turing",
    "1912–1954",
    "an English mathematician and computer scientist",
    "He defined the Turing machine, helped break the Enigma cipher at Bletchley Park and proposed the Turing test for machine intelligence.",
  ],
  [
    "Stephen Hawking",
    "1942–2018",
    "an English theoretical physicist and cosmologist",
    "He predicted that black holes emit radiation (Hawking radiation) and wrote A Brief History of Time.",
  ],
  [
    "Niels Bohr",
    "1885–1962",
    "a Danish physicist",
    "His model of the atom put electrons on quantised orbits; he received the Nobel Prize in Physics in 1922.",
  ],
  [
    "Gregor Mendel",
    "1822–1884",
    "an Austrian monk and scientist",
    "His experiments crossing pea plants founded the science of genetics and the laws of inheritance.",
  ],
  [
    "Louis Pasteur",
    "1822–1895",
    "a French chemist and microbiologist",
    "He developed pasteurisation and vaccines against rabies and anthrax, and supported the germ theory of disease.",
  ],
  [
    "Dmitri Mendeleev",
    "1834–1907",
    "a Russian chemist",
    "He arranged the chemical elements into the periodic table in 1869 and predicted elements not yet discovered.",
  ],
  [
    "William Shakespeare",
    "1564–1616",
    "an English playwright and poet",
    "He wrote Romeo and Juliet, Hamlet, Macbeth, Othello and King Lear, and 154 sonnets; he is often called England's national poet.",
  ],
  [
    "Leonardo da Vinci",
    "1452–1519",
    "an Italian painter, engineer and scientist of the Renaissance",
    "He painted the Mona Lisa and The Last Supper and filled notebooks with anatomical drawings and designs for machines.",
  ],
  [
    "Michelangelo",
    "1475–1564",
    "an Italian sculptor, painter and architect",
    "He carved the statue of David and painted the ceiling of the Sistine Chapel in Rome.",
  ],
  [
    "Vincent van Gogh",
    "1853–1890",
    "a Dutch post-impressionist painter",
    "He painted The Starry Night and the Sunflowers series; he sold very few paintings in his lifetime.",
  ],
  [
    "Pablo Picasso",
    "1881–1973",
    "a Spanish painter and sculptor",
    "He co-founded Cubism and painted Les Demoiselles d'Avignon and Guernica.",
  ],
  [
    "Wolfgang Amadeus Mozart",
    "1756–1791",
    "an Austrian composer of the Classical period",
    "He wrote more than 600 works, including the operas The Marriage of Figaro and The Magic Flute.",
  ],
  [
    "Ludwig van Beethoven",
    "1770–1827",
    "a German composer and pianist",
    "He wrote nine symphonies, the Ninth ending with the Ode to Joy, and kept composing after he became deaf.",
  ],
  [
    "Johann Sebastian Bach",
    "1685–1750",
    "a German composer of the Baroque period",
    "He wrote the Brandenburg Concertos, the Mass in B minor and The Well-Tempered Clavier.",
  ],
  ["Jane Austen", "1775–1817", "an English novelist", "She wrote Pride and Prejudice, Sense and Sensibility and Emma."],
  [
    "Charles Dickens",
    "1812–1870",
    "an English novelist",
    "He wrote Oliver Twist, A Christmas Carol, David Copperfield and Great Expectations.",
  ],
  ["Leo Tolstoy", "1828–1910", "a Russian writer", "He wrote the novels War and Peace and Anna Karenina."],
  [
    "Homer",
    "8th century BC",
    "an ancient Greek poet",
    "The epic poems the Iliad, about the Trojan War, and the Odyssey are attributed to him.",
  ],
  [
    "Aristotle",
    "384–322 BC",
    "an ancient Greek philosopher",
    "A student of Plato and teacher of Alexander the Great, he wrote on logic, biology, ethics and politics.",
  ],
  [
    "Plato",
    "c. 428–348 BC",
    "an ancient Greek philosopher",
    "A student of Socrates, he founded the Academy in Athens and wrote dialogues such as the Republic.",
  ],
  [
    "Confucius",
    "551–479 BC",
    "a Chinese philosopher",
    "His teachings on ethics, family and government, collected in the Analects, shaped Chinese culture for centuries.",
  ],
  [
    "Julius Caesar",
    "100–44 BC",
    "a Roman general and statesman",
    "He conquered Gaul, crossed the Rubicon in 49 BC and was assassinated on the Ides of March, 44 BC.",
  ],
  [
    "Cleopatra",
    "69–30 BC",
    "the last active ruler of the Ptolemaic Kingdom of Egypt",
    "She allied with Julius Caesar and then Mark Antony against Rome.",
  ],
  [
    "Alexander the Great",
    "356–323 BC",
    "a king of Macedon",
    "He built one of the largest empires of the ancient world, from Greece to north-western India.",
  ],
  [
    "Napoleon Bonaparte",
    "1769–1821",
    "a French military leader and emperor",
    "He crowned himself Emperor of the French in 1804 and was defeated at Waterloo in 1815.",
  ],
  [
    "George Washington",
    "1732–1799",
    "an American military officer and statesman",
    "He led the Continental Army in the American Revolutionary War and was the first President of the United States (1789–1797).",
  ],
  [
    "Abraham Lincoln",
    "1809–1865",
    "the 16th President of the United States",
    "He led the Union through the American Civil War and issued the Emancipation Proclamation in 1863.",
  ],
  [
    "Mahatma Gandhi",
    "1869–1948",
    "an Indian lawyer and leader of the independence movement",
    "He led non-violent resistance against British rule, including the Salt March of 1930.",
  ],
  [
    "Nelson Mandela",
    "1918–2013",
    "a South African anti-apartheid activist",
    "After 27 years in prison he became the first President of South Africa elected in a fully democratic election (1994).",
  ],
  [
    "Martin Luther King Jr.",
    "1929–1968",
    "an American civil rights leader",
    'He gave the "I Have a Dream" speech in Washington in 1963 and received the Nobel Peace Prize in 1964.',
  ],
  [
    "Neil Armstrong",
    "1930–2012",
    "an American astronaut",
    "As commander of Apollo 11 he became the first person to walk on the Moon, on 20 July 1969.",
  ],
  [
    "Yuri Gagarin",
    "1934–1968",
    "a Soviet cosmonaut",
    "On 12 April 1961, aboard Vostok 1, he became the first human to travel into outer space.",
  ],
];

// title, year, explanation
const EVENTS: Array<[string, string, string]> = [
  [
    "World War I",
    "1914–1918",
    "A global war centred in Europe between the Allies and the Central Powers; it began after the assassination of Archduke Franz Ferdinand and ended with the armistice of 11 November 1918.",
  ],
  [
    "World War II",
    "1939–1945",
    "The deadliest war in history, fought between the Allies and the Axis powers. It began with Germany's invasion of Poland in September 1939 and ended in 1945: in Europe on 8 May, in Asia with Japan's surrender on 2 September.",
  ],
  [
    "The French Revolution",
    "1789–1799",
    "A period of political upheaval in France that began with the storming of the Bastille on 14 July 1789 and abolished the monarchy.",
  ],
  [
    "The American Declaration of Independence",
    "1776",
    "Adopted by the Continental Congress on 4 July 1776, it announced that the thirteen colonies were independent of Great Britain; Thomas Jefferson was its principal author.",
  ],
  [
    "The fall of the Berlin Wall",
    "1989",
    "On 9 November 1989 East Germany opened the border crossings of the Berlin Wall, leading to German reunification in 1990.",
  ],
  [
    "The Apollo 11 Moon landing",
    "1969",
    "On 20 July 1969 Neil Armstrong and Buzz Aldrin landed the lunar module Eagle on the Moon while Michael Collins orbited above.",
  ],
  [
    "The Industrial Revolution",
    "c. 1760–1840",
    "The shift from hand production to machines, steam power and factories, beginning in Great Britain.",
  ],
  [
    "The invention of the printing press",
    "c. 1440",
    "Johannes Gutenberg's movable-type printing press in Mainz made books far cheaper and spread literacy across Europe.",
  ],
  [
    "The Renaissance",
    "14th–17th century",
    "A cultural movement that began in Florence and revived classical art, architecture and learning across Europe.",
  ],
  [
    "The first powered flight",
    "1903",
    "On 17 December 1903 the Wright brothers flew the Wright Flyer at Kitty Hawk, North Carolina: the first controlled, sustained powered aeroplane flight.",
  ],
];

// name, fact
const SPACE: Array<[string, string]> = [
  [
    "The Sun",
    "The star at the centre of the Solar System, a ball of hot plasma about 109 times the diameter of Earth; its light takes about 8 minutes 20 seconds to reach Earth.",
  ],
  ["Mercury (planet)", "The smallest planet and the closest to the Sun; a year there lasts 88 Earth days."],
  ["Venus", "The second planet from the Sun and the hottest, because its thick carbon dioxide atmosphere traps heat."],
  [
    "Earth",
    "The third planet from the Sun and the only one known to harbour life; about 71% of its surface is covered by water.",
  ],
];

const slug = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
const dateFor = (index: number) =>
  `20${20 + (index % 5)}-${String((index % 12) + 1).padStart(2, "0")}-${String((index % 27) + 1).padStart(2, "0")}`;
const BASE = "https://corpus.toolplane.invalid";

export function sampleCorpus(): CorpusDocument[] {
  const docs: CorpusDocument[] = [];
  const push = (title: string, path: string, text: string) =>
    docs.push({ title, url: `${BASE}/${path}`, text, date: dateFor(docs.length) });

  for (const [name, capital, continent, languages, currency, fact] of COUNTRIES) {
    push(
      name,
      `geography/countries/${slug(name)}`,
      `${name} is a country in ${continent}. Its capital is ${capital}. Official language: ${languages}. Currency: the ${currency}. ${fact}`,
    );
    push(
      `${capital}, capital of ${name}`,
      `geography/capitals/${slug(capital)}`,
      `${capital} is the capital city of ${name}, in ${continent}. As the seat of government it hosts the national parliament and ministries. ${fact}`,
    );
  }
  for (const [name, symbol, number, fact] of ELEMENTS) {
    push(
      `${name} (${symbol})`,
      `chemistry/elements/${slug(name)}`,
      `${name} is the chemical element with symbol ${symbol} and atomic number ${number}. ${fact}`,
    );
  }
  for (const [term, explanation] of IMAGE_PROCESSING) push(term, `image-processing/${slug(term)}`, explanation);
  for (const [title, explanation] of SCIENCE) push(title, `science/${slug(title)}`, explanation);
  for (const [name, years, who, fact] of PEOPLE) {
    push(name, `people/${slug(name)}`, `${name} (${years}) was ${who}. ${fact}`);
  }
  for (const [title, years, explanation] of EVENTS)
    push(title, `history/${slug(title)}`, `${title} (${years}). ${explanation}`);
  for (const [name, fact] of SPACE) push(name, `space/${slug(name)}`, fact);
  for (const [name, kind, location, fact] of LANDMARKS) {
    push(name, `geography/landmarks/${slug(name)}`, `${name} is a ${kind} in ${location}. ${fact}`);
  }
  return docs;
}

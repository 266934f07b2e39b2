//! Names, places and telephone plans of the cultures the people generator draws from.
//!
//! Names are romanised as customer systems store them; a few carry the diacritics of
//! their language. Each list starts with its most common entries: the generator draws
//! with weights falling along the list, so common names are shared by many unrelated
//! people, as they are in real customer lists.

#[derive(Debug)]
/// One culture: its names, its country's places and telephone plan.
pub(crate) struct Culture {
    /// Short name, for the truth notes.
    pub name: &'static str,
    /// Relative weight in the population.
    pub weight: u32,
    /// Given names of women, then of men; each with its spelling variants and short
    /// forms (transliterations, nicknames).
    pub female: &'static [(&'static str, &'static [&'static str])],
    /// See `female`.
    pub male: &'static [(&'static str, &'static [&'static str])],
    /// Family names, with spelling variants.
    pub family: &'static [(&'static str, &'static [&'static str])],
    /// Share (per mille) of records that write the family name first.
    pub family_first_pm: u32,
    /// Country name as written in addresses.
    pub country: &'static str,
    /// Cities with their postal-code prefix.
    pub cities: &'static [(&'static str, &'static str)],
    /// Street names and the word for a street (with its abbreviation).
    pub streets: &'static [&'static str],
    /// Street type, abbreviation, and whether it follows the name (`Main Street`) or
    /// precedes it (`Rue de la Paix`).
    pub street_type: (&'static str, &'static str, bool),
    /// Parts of rarer given names (first part, second part), joined into one name: the
    /// lists above hold the common names only.
    pub given_parts: (&'static [&'static str], &'static [&'static str]),
    /// Parts of rarer family names, joined likewise.
    pub family_parts: (&'static [&'static str], &'static [&'static str]),
    /// Share (per mille) of people whose family name is one of the common ones.
    pub common_family_pm: u32,
    /// Telephone country code.
    pub country_code: &'static str,
    /// Digits of the national significant number (10 for most plans).
    pub national_digits: usize,
    /// The trunk prefix dialled before a national number ("0", "1", "8" or "").
    pub trunk: &'static str,
}

macro_rules! n {
    ($($name:literal $(: [$($v:literal),*])?),* $(,)?) => {
        &[$(($name, &[$($($v),*)?])),*]
    };
}

/// Every culture of the generator.
pub(crate) const CULTURES: &[Culture] = &[
    Culture {
        name: "us",
        weight: 30,
        female: n!["Mary": ["Marie"], "Jennifer": ["Jenny", "Jen"], "Elizabeth": ["Liz", "Beth", "Betty"],
            "Patricia": ["Pat", "Patty"], "Linda", "Barbara": ["Barb"], "Susan": ["Sue"], "Jessica": ["Jess"],
            "Sarah": ["Sara"], "Karen", "Nancy", "Margaret": ["Maggie", "Peggy"], "Emily", "Ashley",
            "Katherine": ["Kate", "Kathy", "Catherine"], "Rebecca": ["Becky"], "Deborah": ["Debbie", "Debra"]],
        male: n!["James": ["Jim", "Jimmy"], "Robert": ["Bob", "Rob", "Bobby"], "John": ["Jack", "Johnny"],
            "Michael": ["Mike", "Mick"], "William": ["Bill", "Will", "Billy"], "David": ["Dave"],
            "Richard": ["Rick", "Dick"], "Joseph": ["Joe"], "Thomas": ["Tom", "Tommy"], "Charles": ["Charlie", "Chuck"],
            "Christopher": ["Chris"], "Daniel": ["Dan", "Danny"], "Matthew": ["Matt"], "Anthony": ["Tony"],
            "Steven": ["Steve", "Stephen"], "Andrew": ["Andy", "Drew"]],
        family: n!["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
            "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark",
            "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Hill", "Green", "Adams",
            "Baker", "Nelson", "Carter", "Mitchell", "Roberts", "Turner", "Phillips", "Campbell", "Parker", "Evans",
            "O'Brien": ["OBrien", "O Brien"], "McDonald": ["MacDonald", "Mcdonald"]],
        family_first_pm: 5,
        country: "United States",
        cities: &[
            ("Seattle", "981"),
            ("Portland", "972"),
            ("Denver", "802"),
            ("Austin", "787"),
            ("Chicago", "606"),
            ("Boston", "021"),
            ("Atlanta", "303"),
            ("Phoenix", "850"),
        ],
        streets: &[
            "Main",
            "Oak",
            "Pine",
            "Maple",
            "Cedar",
            "Elm",
            "Washington",
            "Lake",
            "Hill",
            "Park",
            "Lincoln",
            "Jackson",
            "Sunset",
            "Highland",
            "Ridge",
            "Church",
            "Spring",
            "River",
        ],
        street_type: ("Street", "St", true),
        given_parts: (
            &[
                "Al", "Bran", "Cal", "Dar", "El", "Jas", "Kay", "Lan", "Mar", "Ren", "Shel", "Tre",
                "Wyn", "Ash", "Bri", "Cor",
            ],
            &[
                "don", "ley", "en", "iel", "ton", "a", "ric", "ette", "by", "lyn", "ian", "a",
            ],
        ),
        family_parts: (
            &[
                "Ash", "Black", "Brad", "Crans", "Dun", "Elling", "Fair", "Gold", "Hart", "Kings",
                "Lock", "Mor", "North", "Pem", "Rad", "Stan", "Thorn", "Wake", "Whit", "Wood",
            ],
            &[
                "ford", "well", "ley", "ton", "wood", "field", "bury", "ham", "worth", "by",
                "more", "stead", "brook", "son",
            ],
        ),
        common_family_pm: 300,
        country_code: "1",
        national_digits: 10,
        trunk: "1",
    },
    Culture {
        name: "mx",
        weight: 12,
        female: n!["María": ["Maria"], "Guadalupe": ["Lupe"], "Juana", "Verónica": ["Veronica"], "Rosa",
            "Sofía": ["Sofia"], "Lucía": ["Lucia"], "Ana", "Carmen", "Isabel": ["Chabela"], "Fernanda",
            "Gabriela": ["Gaby"], "Alejandra": ["Ale"], "Daniela", "Mariana"],
        male: n!["José": ["Jose", "Pepe"], "Juan", "Luis", "Carlos", "Francisco": ["Paco", "Pancho"],
            "Jesús": ["Jesus", "Chucho"], "Miguel", "Alejandro": ["Alex"], "Antonio": ["Toño", "Tono"],
            "Javier", "Jorge", "Manuel": ["Manolo"], "Ricardo", "Fernando", "Eduardo": ["Lalo"]],
        family: n!["García": ["Garcia"], "Hernández": ["Hernandez"], "Martínez": ["Martinez"],
            "López": ["Lopez"], "González": ["Gonzalez"], "Pérez": ["Perez"], "Rodríguez": ["Rodriguez"],
            "Sánchez": ["Sanchez"], "Ramírez": ["Ramirez"], "Cruz", "Flores", "Gómez": ["Gomez"], "Morales",
            "Vázquez": ["Vazquez", "Vasquez"], "Reyes", "Jiménez": ["Jimenez"], "Torres", "Díaz": ["Diaz"],
            "Gutiérrez": ["Gutierrez"], "Ruiz", "Mendoza", "Aguilar", "Ortiz", "Castillo", "Romero"],
        family_first_pm: 10,
        country: "Mexico",
        cities: &[
            ("Ciudad de México", "06"),
            ("Guadalajara", "44"),
            ("Monterrey", "64"),
            ("Puebla", "72"),
            ("Tijuana", "22"),
            ("León", "37"),
        ],
        streets: &[
            "Reforma",
            "Insurgentes",
            "Juárez",
            "Hidalgo",
            "Morelos",
            "Madero",
            "Revolución",
            "Independencia",
            "Zaragoza",
            "Allende",
            "Guerrero",
            "Obregón",
        ],
        street_type: ("Avenida", "Av.", false),
        given_parts: (
            &[
                "Adri", "Cris", "Emi", "Ire", "Mari", "Nata", "Ro", "Valen", "Xime", "Mau", "Gil",
                "Leo",
            ],
            &[
                "ana", "ela", "lio", "berto", "sol", "nela", "cio", "tina", "ricio", "dario",
            ],
        ),
        family_parts: (
            &[
                "Alva", "Bece", "Cama", "Esco", "Galin", "Iba", "Lara", "Maldo", "Olive", "Palo",
                "Quin", "Sando", "Tapia", "Velaz", "Zamo",
            ],
            &[
                "rez", "rra", "nado", "do", "tero", "quez", "ñez", "rano", "valle", "cedo",
            ],
        ),
        common_family_pm: 550,
        country_code: "52",
        national_digits: 10,
        trunk: "",
    },
    Culture {
        name: "de",
        weight: 8,
        female: n!["Ursula": ["Uschi"], "Monika", "Petra", "Sabine", "Claudia", "Susanne": ["Susi"],
            "Andrea", "Stefanie": ["Steffi", "Stephanie"], "Katharina": ["Kathrin", "Katrin"], "Julia",
            "Anna", "Lena"],
        male: n!["Peter", "Michael", "Thomas": ["Tom"], "Andreas", "Wolfgang", "Klaus", "Jürgen": ["Juergen", "Jurgen"],
            "Stefan": ["Steffen", "Stephan"], "Christian", "Uwe", "Matthias", "Alexander": ["Alex"],
            "Maximilian": ["Max"], "Lukas": ["Lucas"], "Jörg": ["Joerg", "Jorg"]],
        family: n!["Müller": ["Mueller", "Muller"], "Schmidt": ["Schmitt"], "Schneider", "Fischer",
            "Weber", "Meyer": ["Meier", "Maier", "Mayer"], "Wagner", "Becker", "Schulz": ["Schultz"],
            "Hoffmann": ["Hofmann"], "Schäfer": ["Schaefer"], "Koch", "Bauer", "Richter", "Klein", "Wolf",
            "Schröder": ["Schroeder"], "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger": ["Krueger"],
            "Hartmann", "Lange", "Werner", "Krause", "Lehmann", "Köhler": ["Koehler"]],
        family_first_pm: 10,
        country: "Germany",
        cities: &[
            ("Berlin", "10"),
            ("Hamburg", "20"),
            ("München", "80"),
            ("Köln", "50"),
            ("Frankfurt am Main", "60"),
            ("Stuttgart", "70"),
            ("Leipzig", "04"),
        ],
        streets: &[
            "Haupt", "Schul", "Garten", "Bahnhof", "Dorf", "Berg", "Linden", "Kirch", "Wald",
            "Ring", "Goethe", "Schiller", "Mozart", "Birken",
        ],
        street_type: ("straße", "str.", true),
        given_parts: (
            &[
                "Ann", "Bern", "Diet", "Frie", "Gun", "Hei", "Ing", "Kon", "Lie", "Rein", "Sieg",
                "Wil",
            ],
            &[
                "hard", "rich", "linde", "mar", "gard", "run", "fried", "helm", "traud", "bert",
            ],
        ),
        family_parts: (
            &[
                "Alt", "Bach", "Eich", "Fels", "Grün", "Hass", "Kessel", "Lind", "Mühl", "Ober",
                "Rosen", "Stein", "Unter", "Wein", "Zell",
            ],
            &[
                "berger", "mann", "hof", "bach", "feld", "meier", "inger", "hauser", "rieder",
                "wald",
            ],
        ),
        common_family_pm: 350,
        country_code: "49",
        national_digits: 10,
        trunk: "0",
    },
    Culture {
        name: "fr",
        weight: 6,
        female: n!["Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise": ["Francoise"],
            "Anne", "Christine", "Sophie", "Céline": ["Celine"], "Camille", "Léa": ["Lea"], "Chloé": ["Chloe"],
            "Marie-Claire": ["Marie Claire", "Marieclaire"], "Hélène": ["Helene"]],
        male: n!["Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "François": ["Francois"],
            "Jean-Pierre": ["Jean Pierre", "Jeanpierre", "JP"], "Christophe", "Frédéric": ["Frederic", "Fred"],
            "Laurent", "Julien", "Stéphane": ["Stephane"], "Sébastien": ["Sebastien", "Seb"], "Olivier"],
        family: n!["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
            "Moreau", "Simon", "Laurent", "Lefèvre": ["Lefebvre", "Lefevre"], "Michel", "Garcia", "David",
            "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André": ["Andre"], "Mercier",
            "Dupont": ["Du Pont"], "Lambert", "Bonnet", "François": ["Francois"]],
        family_first_pm: 30,
        country: "France",
        cities: &[
            ("Paris", "75"),
            ("Lyon", "69"),
            ("Marseille", "13"),
            ("Toulouse", "31"),
            ("Nice", "06"),
            ("Nantes", "44"),
            ("Bordeaux", "33"),
        ],
        streets: &[
            "de la Paix",
            "Victor Hugo",
            "de la République",
            "Pasteur",
            "Jean Jaurès",
            "du Moulin",
            "des Écoles",
            "de l'Église",
            "Voltaire",
            "Gambetta",
            "du Général de Gaulle",
        ],
        street_type: ("Rue", "R.", false),
        given_parts: (
            &[
                "Adé", "Bap", "Clé", "Gaë", "Lou", "Mael", "Noé", "Océ", "Rom", "Théo", "Val",
                "Yan",
            ],
            &[
                "line", "tiste", "mence", "lle", "is", "ane", "mie", "ric", "phile", "nne",
            ],
        ),
        family_parts: (
            &[
                "Beau", "Bel", "Cha", "Dela", "Font", "Gau", "Lacro", "Mont", "Pel", "Roche",
                "Saint", "Ville",
            ],
            &[
                "champ", "lieu", "rive", "fort", "taine", "mard", "court", "mont", "lier", "neuve",
            ],
        ),
        common_family_pm: 350,
        country_code: "33",
        national_digits: 9,
        trunk: "0",
    },
    Culture {
        name: "cn",
        weight: 12,
        female: n!["Fang", "Na", "Xiuying": ["Xiu Ying", "Hsiu-ying"], "Min", "Jing", "Li", "Yan", "Juan",
            "Xiaoyan": ["Xiao Yan", "Hsiao-yen"], "Hui", "Ying", "Mei", "Lan", "Ling"],
        male: n!["Wei", "Wei Jie": ["Weijie", "Wei-Chieh"], "Yong", "Jun", "Tao", "Ming", "Jie", "Lei",
            "Qiang": ["Chiang"], "Hao", "Bo", "Gang", "Ping", "Chao", "Peng"],
        family: n!["Wang": ["Wong"], "Li": ["Lee"], "Zhang": ["Chang", "Cheung"], "Liu": ["Lau"],
            "Chen": ["Chan"], "Yang": ["Yeung"], "Huang": ["Wong"], "Zhao": ["Chao"], "Wu": ["Ng"],
            "Zhou": ["Chow"], "Xu": ["Hsu"], "Sun", "Ma", "Zhu": ["Chu"], "Hu", "Guo", "He": ["Ho"], "Lin": ["Lam"],
            "Gao", "Luo"],
        family_first_pm: 350,
        country: "China",
        cities: &[
            ("Beijing", "100"),
            ("Shanghai", "200"),
            ("Guangzhou", "510"),
            ("Shenzhen", "518"),
            ("Chengdu", "610"),
            ("Hangzhou", "310"),
        ],
        streets: &[
            "Changan",
            "Nanjing",
            "Huaihai",
            "Zhongshan",
            "Renmin",
            "Jiefang",
            "Heping",
            "Jianguo",
            "Dongfeng",
            "Xinhua",
        ],
        street_type: ("Road", "Rd", true),
        given_parts: (
            &[
                "Jia", "Xin", "Yu", "Zi", "Hao", "Chen", "Rui", "Yi", "Meng", "Shu", "Tian", "Wen",
                "Xue", "Ya", "Zhen", "Kai",
            ],
            &[
                "hui", "yu", "han", "xuan", "ran", "qi", "ning", "jie", "tong", "lin", "yang",
                "feng", "wen", "li", "bo", "ming",
            ],
        ),
        family_parts: (
            &[
                "Lu", "Song", "Zheng", "Xie", "Han", "Tang", "Feng", "Yu", "Dong", "Xiao",
            ],
            &[""],
        ),
        common_family_pm: 800,
        country_code: "86",
        national_digits: 10,
        trunk: "0",
    },
    Culture {
        name: "in",
        weight: 12,
        female: n!["Priya", "Anjali", "Sunita", "Pooja": ["Puja"], "Lakshmi": ["Laxmi"], "Deepika", "Kavita": ["Kavitha"],
            "Neha", "Divya", "Swati": ["Swathi"], "Ananya", "Meena", "Shreya", "Aishwarya": ["Aish"]],
        male: n!["Rahul", "Amit", "Raj": ["Raju"], "Sanjay", "Vijay", "Arun", "Suresh", "Ramesh",
            "Rajesh", "Anil", "Mohammed": ["Mohammad", "Mohd", "Muhammad"], "Venkatesh": ["Venkat"],
            "Srinivas": ["Srinivasa", "Seenu"], "Arjun", "Vikram": ["Vicky"]],
        family: n!["Kumar", "Singh", "Sharma", "Patel", "Gupta", "Reddy", "Rao", "Shah", "Iyer": ["Iyyer"],
            "Nair", "Menon", "Das", "Joshi", "Mehta", "Chopra", "Verma", "Agarwal": ["Aggarwal", "Agrawal"],
            "Chaudhary": ["Chaudhari", "Choudhary"], "Mukherjee": ["Mukherji"], "Banerjee": ["Banerji"],
            "Srinivasan", "Krishnan", "Pillai", "Bhat": ["Bhatt"]],
        family_first_pm: 60,
        country: "India",
        cities: &[
            ("Mumbai", "400"),
            ("Delhi", "110"),
            ("Bengaluru", "560"),
            ("Chennai", "600"),
            ("Hyderabad", "500"),
            ("Pune", "411"),
            ("Kolkata", "700"),
        ],
        streets: &[
            "MG",
            "Gandhi",
            "Nehru",
            "Station",
            "Temple",
            "Church",
            "Market",
            "Lake",
            "Park",
            "Ring",
            "Brigade",
            "Anna Salai",
        ],
        street_type: ("Road", "Rd", true),
        given_parts: (
            &[
                "Adi", "Bha", "Cha", "Dee", "Har", "Ish", "Kri", "Man", "Nav", "Pra", "Sai", "Tej",
                "Vai", "Yash",
            ],
            &[
                "tya", "vana", "ndra", "pak", "shita", "aan", "sha", "deep", "kash", "ram",
                "shnavi", "as",
            ],
        ),
        family_parts: (
            &[
                "Acha", "Bhand", "Desh", "Gai", "Kulk", "Naga", "Pand", "Raghu", "Sahu", "Thak",
                "Upad", "Venu",
            ],
            &[
                "rya", "ari", "pande", "kwad", "arni", "raj", "ey", "nathan", "kar", "hyay",
                "gopal",
            ],
        ),
        common_family_pm: 450,
        country_code: "91",
        national_digits: 10,
        trunk: "0",
    },
    Culture {
        name: "ng",
        weight: 5,
        female: n!["Chioma", "Ngozi", "Funmilayo": ["Funmi"], "Aisha": ["Aishat"], "Blessing", "Adaeze": ["Ada"],
            "Folake", "Yetunde": ["Yetty"], "Amaka", "Zainab"],
        male: n!["Chukwuemeka": ["Emeka"], "Oluwaseun": ["Seun"], "Abdullahi", "Ibrahim", "Tunde": ["Babatunde"],
            "Chinedu": ["Chi"], "Olumide": ["Mide"], "Emmanuel": ["Emma"], "Musa", "Obinna"],
        family: n!["Okafor", "Adeyemi", "Okonkwo", "Bello", "Abubakar", "Eze", "Ogunleye", "Nwosu",
            "Adebayo", "Ibrahim", "Mohammed": ["Muhammed"], "Olawale", "Okeke", "Balogun", "Uche"],
        family_first_pm: 40,
        country: "Nigeria",
        cities: &[
            ("Lagos", "100"),
            ("Abuja", "900"),
            ("Ibadan", "200"),
            ("Kano", "700"),
            ("Port Harcourt", "500"),
        ],
        streets: &[
            "Awolowo",
            "Broad",
            "Marina",
            "Allen",
            "Adeola Odeku",
            "Herbert Macaulay",
            "Ahmadu Bello",
            "Ozumba Mbadiwe",
        ],
        street_type: ("Street", "St", true),
        given_parts: (
            &[
                "Ade", "Chi", "Ife", "Kelechi", "Nne", "Olu", "Onye", "Tobi", "Uche", "Yemi",
                "Femi", "Kemi",
            ],
            &[
                "ola", "nonso", "oma", "chukwu", "wale", "bunmi", "dinma", "ka", "tayo", "se",
            ],
        ),
        family_parts: (
            &[
                "Ade", "Afo", "Ako", "Ekwe", "Ige", "Nnamdi", "Obi", "Odu", "Ogbu", "Olu", "Onu",
                "Ozo",
            ],
            &[
                "bayo", "labi", "nike", "mba", "dele", "ora", "sanya", "gwu", "wole", "ike",
            ],
        ),
        common_family_pm: 300,
        country_code: "234",
        national_digits: 10,
        trunk: "0",
    },
    Culture {
        name: "vn",
        weight: 4,
        female: n!["Linh", "Huong", "Lan", "Mai", "Trang", "Thao", "Ngoc Anh": ["Ngocanh"], "Thu Ha": ["Thuha"]],
        male: n!["Minh", "Tuan", "Hung", "Duc", "Nam", "Quang", "Thanh", "Van Long": ["Vanlong"]],
        family: n!["Nguyen": ["Nguyễn", "Nguyen Van"], "Tran": ["Trần"], "Le": ["Lê"], "Pham": ["Phạm"],
            "Hoang": ["Huynh"], "Phan", "Vu": ["Vo"], "Dang", "Bui", "Do"],
        family_first_pm: 300,
        country: "Vietnam",
        cities: &[
            ("Hanoi", "100"),
            ("Ho Chi Minh City", "700"),
            ("Da Nang", "550"),
            ("Hai Phong", "180"),
        ],
        streets: &[
            "Le Loi",
            "Tran Hung Dao",
            "Nguyen Hue",
            "Hai Ba Trung",
            "Ly Thuong Kiet",
            "Dien Bien Phu",
        ],
        street_type: ("Street", "St", true),
        given_parts: (
            &[
                "Anh", "Bao", "Chi", "Dung", "Gia", "Hai", "Khanh", "Ngoc", "Phuong", "Quoc",
                "Thi", "Xuan",
            ],
            &[
                " Anh", " Bao", " Chau", " Duy", " Ha", " Khoa", " Linh", " My", " Nhi", " Son",
                " Thu", " Vy",
            ],
        ),
        family_parts: (
            &[
                "Ngo", "Duong", "Ly", "Truong", "Dinh", "Mai", "Trinh", "Lam", "Luong", "Cao",
            ],
            &[""],
        ),
        common_family_pm: 850,
        country_code: "84",
        national_digits: 10,
        trunk: "0",
    },
    Culture {
        name: "ru",
        weight: 5,
        female: n!["Yelena": ["Elena", "Lena"], "Olga": ["Olya"], "Natalya": ["Natalia", "Natasha"],
            "Tatyana": ["Tatiana", "Tanya"], "Irina": ["Ira"], "Svetlana": ["Sveta"], "Anastasia": ["Nastya", "Anastasiya"],
            "Yekaterina": ["Ekaterina", "Katya"], "Mariya": ["Maria", "Masha"]],
        male: n!["Aleksandr": ["Alexander", "Sasha", "Alexandr"], "Sergey": ["Sergei", "Serge"],
            "Dmitry": ["Dmitri", "Dima"], "Andrey": ["Andrei"], "Aleksey": ["Alexei", "Alexey", "Lyosha"],
            "Mikhail": ["Michael", "Misha"], "Ivan": ["Vanya"], "Yevgeny": ["Evgeny", "Zhenya"],
            "Vladimir": ["Volodya", "Vova"], "Nikolay": ["Nikolai", "Kolya"]],
        family: n!["Ivanov": ["Ivanoff"], "Smirnov", "Kuznetsov": ["Kuznetzov"], "Popov", "Vasilyev": ["Vasiliev"],
            "Petrov", "Sokolov", "Mikhaylov": ["Mikhailov"], "Novikov", "Fyodorov": ["Fedorov"], "Morozov",
            "Volkov", "Alekseyev": ["Alekseev"], "Lebedev", "Semyonov": ["Semenov"], "Yegorov": ["Egorov"]],
        family_first_pm: 150,
        country: "Russia",
        cities: &[
            ("Moscow", "101"),
            ("Saint Petersburg", "190"),
            ("Novosibirsk", "630"),
            ("Yekaterinburg", "620"),
            ("Kazan", "420"),
        ],
        streets: &[
            "Lenina",
            "Tverskaya",
            "Gagarina",
            "Pushkina",
            "Mira",
            "Sovetskaya",
            "Kirova",
            "Nevsky",
        ],
        street_type: ("ulitsa", "ul.", false),
        given_parts: (
            &[
                "Ars", "Bor", "Dan", "Gle", "Kir", "Lyud", "Mil", "Ros", "Stan", "Vas", "Yar",
                "Zla",
            ],
            &[
                "eny", "islav", "ila", "mila", "ana", "tislav", "ena", "ilisa", "ik", "oslava",
            ],
        ),
        family_parts: (
            &[
                "Bel", "Bog", "Dub", "Gor", "Kras", "Lyss", "Med", "Orl", "Pav", "Rum", "Tar",
                "Zhuk",
            ],
            &[
                "ov", "ovsky", "enko", "in", "ykh", "akov", "anov", "itsky", "ev", "ashin",
            ],
        ),
        common_family_pm: 400,
        country_code: "7",
        national_digits: 10,
        trunk: "8",
    },
    Culture {
        name: "jp",
        weight: 3,
        female: n!["Yuki", "Aiko", "Haruka", "Yui", "Sakura", "Emi", "Keiko", "Naomi", "Yoko": ["Yōko"], "Akiko"],
        male: n!["Hiroshi", "Takashi", "Kenji", "Yuto", "Haruto", "Daiki", "Satoshi", "Kazuki", "Shota": ["Shōta"],
            "Ryo": ["Ryou", "Ryō"]],
        family: n!["Sato": ["Satou", "Satō"], "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito": ["Itou", "Itō"],
            "Yamamoto", "Nakamura", "Kobayashi", "Kato": ["Katou", "Katō"], "Yoshida", "Yamada", "Sasaki",
            "Matsumoto", "Inoue"],
        family_first_pm: 300,
        country: "Japan",
        cities: &[
            ("Tokyo", "100"),
            ("Osaka", "530"),
            ("Yokohama", "220"),
            ("Nagoya", "450"),
            ("Sapporo", "060"),
            ("Fukuoka", "810"),
        ],
        streets: &[
            "Chuo", "Ginza", "Shinjuku", "Aoyama", "Sakae", "Umeda", "Tenjin", "Odori",
        ],
        street_type: ("dori", "dori", true),
        given_parts: (
            &[
                "Aki", "Hide", "Kazu", "Masa", "Nobu", "Rin", "Sho", "Taka", "Tomo", "Yoshi",
                "Haru", "Mitsu",
            ],
            &["hiro", "ko", "ki", "mi", "ya", "ta", "na", "to", "ri", "e"],
        ),
        family_parts: (
            &[
                "Ishi", "Kawa", "Mori", "Naka", "Oka", "Saka", "Taka", "Uchi", "Yama", "Hashi",
                "Fuji", "Miya",
            ],
            &[
                "da", "moto", "no", "mura", "guchi", "zaki", "shima", "bayashi", "hara", "kawa",
            ],
        ),
        common_family_pm: 450,
        country_code: "81",
        national_digits: 9,
        trunk: "0",
    },
];

/// Mailbox domains (reserved example names, never real mailboxes).
pub(crate) const DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "mail.example.com",
    "post.example.net",
    "inbox.example.org",
];

/// Employers' mail domains (fictitious companies).
pub(crate) const WORK_DOMAINS: &[&str] = &[
    "contoso.example",
    "fabrikam.example",
    "northwind.example",
    "tailspin.example",
    "adventure-works.example",
];
